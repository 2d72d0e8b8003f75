# agid/: see agid/README.md
AGID_SRCS :=
