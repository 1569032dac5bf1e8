"""Where outbox events go: webhooks, the 1C HTTP service, RabbitMQ, the Bitrix site."""
