"""A graphs package whose only graph defines no EXAMPLE_INPUT (for the start page's tests)."""
