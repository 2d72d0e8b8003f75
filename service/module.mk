# service/: the daemon, the store, the act format and the CLI (main.c is linked separately).
SERVICE_SRCS := \
	service/cli.c \
	service/cli_act.c \
	service/cli_config.c \
	service/cli_pdnd.c \
	service/cli_protocol.c \
	service/cli_run.c \
	service/cli_send.c \
	service/cli_status.c \
	service/cli_validate.c \
	service/svc_act.c \
	service/svc_daemon.c \
	service/svc_meta.c \
	service/svc_metrics.c \
	service/svc_outbox.c \
	service/svc_pipeline.c \
	service/svc_send_map.c \
	service/svc_state.c \
	service/svc_status.c \
	service/svc_steps.c \
	service/svc_store.c \
	service/svc_web.c
