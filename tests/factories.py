"""factory_boy factories for the desk's rows."""

from __future__ import annotations

import uuid

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from reviewdesk.models import Queue, ReviewItem, Thread


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group
        django_get_or_create = ("name",)

    name = "reviewers"


class QueueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Queue
        django_get_or_create = ("slug",)
        skip_postgeneration_save = True

    slug = "default"
    name = "Default queue"

    @factory.post_generation
    def groups(self, create: bool, extracted: list[Group] | None, **kwargs: object) -> None:
        if create:
            self.groups.add(*(extracted or [GroupFactory()]))


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw")


class ThreadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Thread

    graph = "age"
    input = factory.LazyFunction(dict)
    status = Thread.Status.INTERRUPTED
    queue = factory.SubFactory(QueueFactory)


class ReviewItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReviewItem

    thread = factory.SubFactory(ThreadFactory)
    queue = factory.SelfAttribute("thread.queue")
    interrupt_id = factory.LazyFunction(lambda: uuid.uuid4().hex)
    value = "What is your age?"
