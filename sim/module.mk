# sim/: send-sim, linked with common/ only (see sim/README.md).
SIM_SRCS := \
	sim/sim_admin.c \
	sim/sim_anpr.c \
	sim/sim_inad.c \
	sim/sim_main.c \
	sim/sim_pdnd.c \
	sim/sim_pdnd_jwt.c \
	sim/sim_proto.c \
	sim/sim_send.c \
	sim/sim_send_flow.c
