"""Pages. Thin: read through queries, change through services, render one template or partial."""
