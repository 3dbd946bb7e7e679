from payrelay.adapters.storage.migrations.env_common import run

run()
