# The click-to-call log moves from the tenancy app (label pbx) to calls, which owns calls:
# state only, the table keeps its name and rows; admin history and permissions follow the
# content type.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _relabel(apps, old: str, new: str) -> None:
    content_types = apps.get_model("contenttypes", "ContentType")
    if not content_types.objects.filter(app_label=new, model="callattempt").exists():
        content_types.objects.filter(app_label=old, model="callattempt").update(app_label=new)


def _move_content_type(apps, schema_editor) -> None:
    _relabel(apps, "pbx", "calls")


def _move_content_type_back(apps, schema_editor) -> None:
    _relabel(apps, "calls", "pbx")


class Migration(migrations.Migration):

    dependencies = [
        ('calls', '0001_initial'),
        ('pbx', '0007_delete_callattempt'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.CreateModel(
            name='CallAttempt',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('caller', models.CharField(max_length=64)),
                ('callee', models.CharField(max_length=64)),
                ('callee_context', models.CharField(max_length=32)),
                ('uuid', models.CharField(blank=True, db_index=True, max_length=64)),
                ('status', models.CharField(choices=[('requested', 'Requested'), ('start', 'Started'), ('caller-dial', 'Dialling your phone'), ('caller-ring', 'Your phone is ringing'), ('caller-answer', 'You answered'), ('dial', 'Dialling'), ('ring', 'Ringing'), ('answer', 'Connected'), ('end', 'Ended'), ('failed', 'Failed')], default='requested', max_length=20)),
                ('error', models.CharField(blank=True, max_length=200)),
                ('request_id', models.CharField(blank=True, max_length=100)),
                ('created', models.DateTimeField(auto_now_add=True)),
                ('updated', models.DateTimeField(auto_now=True)),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='call_attempts', to='pbx.tenant')),
                ('user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'call attempt',
                'verbose_name_plural': 'call attempts',
                'db_table': 'pbx_callattempt',
                'ordering': ['-created'],
            },
        )], database_operations=[]),
        migrations.RunPython(_move_content_type, _move_content_type_back),
    ]
