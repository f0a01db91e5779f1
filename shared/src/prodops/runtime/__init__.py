"""The runtime every service shares: settings, database, migrations, telemetry, the app factory."""
