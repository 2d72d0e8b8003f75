# pdnd/: see pdnd/README.md
PDND_SRCS := \
	pdnd/pdnd_client.c \
	pdnd/pdnd_modi.c
