"""The default queue with its reviewers group, and LangGraph's checkpoint tables."""

from __future__ import annotations

from django.db import migrations


def create_default_queue(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Queue = apps.get_model("reviewdesk", "Queue")
    reviewers, _ = Group.objects.get_or_create(name="reviewers")
    queue, _ = Queue.objects.get_or_create(slug="default", defaults={"name": "Default queue"})
    queue.groups.add(reviewers)


def setup_checkpointer(apps, schema_editor):
    # PostgresSaver.setup() must run once per database, never at import: this is that once.
    from reviewdesk.engine import checkpoint

    checkpoint.setup()


class Migration(migrations.Migration):
    dependencies = [
        ("reviewdesk", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(create_default_queue, migrations.RunPython.noop),
        migrations.RunPython(setup_checkpointer, migrations.RunPython.noop, elidable=False),
    ]
