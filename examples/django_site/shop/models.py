"""An order: the row a transactional enqueue commits (or rolls back) with its job."""

from django.db import models


class Order(models.Model):
    """A placed order."""

    item = models.CharField(max_length=100)
