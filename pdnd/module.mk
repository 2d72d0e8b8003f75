# pdnd/: see pdnd/README.md
PDND_SRCS := \
	pdnd/pdnd_anpr.c \
	pdnd/pdnd_client.c \
	pdnd/pdnd_inad.c \
	pdnd/pdnd_modi.c \
	pdnd/pdnd_resolve.c \
	pdnd/pdnd_store.c
