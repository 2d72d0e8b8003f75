# agid/: see agid/README.md
AGID_SRCS := \
	agid/agid_doc.c \
	agid/agid_meta.c \
	agid/agid_pdfa.c \
	agid/agid_sig.c \
	agid/agid_util.c \
	agid/agid_xmp.c
