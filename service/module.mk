# service/: the daemon, the store, the act format and the CLI (main.c is linked separately).
SERVICE_SRCS := \
	service/cli.c \
	service/cli_act.c \
	service/cli_config.c \
	service/cli_protocol.c \
	service/cli_pdnd.c \
	service/cli_validate.c \
	service/cli_send.c \
	service/svc_act.c \
	service/svc_send_map.c \
	service/svc_state.c \
	service/svc_store.c
