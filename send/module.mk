# send/: see send/README.md
SEND_SRCS :=
