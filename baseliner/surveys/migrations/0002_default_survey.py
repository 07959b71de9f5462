"""The default end-of-attempt survey (version 1). Staff edit it in the admin; an edit of a
version that has answers becomes a new version."""
from django.db import migrations

from baseliner.surveys.defaults import QUESTIONS, TITLE


def create(apps, schema_editor):
    Survey = apps.get_model("surveys", "Survey")
    if not Survey.objects.filter(name="default").exists():
        Survey.objects.create(name="default", version=1, title=TITLE, questions=QUESTIONS, is_active=True)


class Migration(migrations.Migration):
    dependencies = [("surveys", "0001_initial")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
