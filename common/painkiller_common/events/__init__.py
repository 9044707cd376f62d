"""Events between the services: the broker, its topology and rights, the relay and the consumer."""
