# send/: the SEND B2B client (see send/README.md).
SEND_SRCS := \
	send/send_client.c \
	send/send_notification.c \
	send/send_read.c \
	send/send_stream.c \
	send/send_upload.c
