# CallAttempt moved to the calls app (calls.0002): state only, the table stays.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('pbx', '0006_tenant_history_days'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='CallAttempt')], database_operations=[]
        ),
    ]
