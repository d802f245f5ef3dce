"""Front doors: where devices and gateways reach the platform (MQTT, HTTPS)."""
