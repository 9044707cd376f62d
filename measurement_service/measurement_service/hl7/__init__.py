"""HL7 v2 over MLLP from bedside monitors and their gateways (doc/hl7.md): the listener
(listener.py), what a message says (messages.py, codes.py), what is stored of it (store.py) and
the ACK it gets (acks.py)."""
