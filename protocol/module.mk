# protocol/: see protocol/README.md
PROTOCOL_SRCS :=
