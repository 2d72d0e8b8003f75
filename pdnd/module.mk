# pdnd/: see pdnd/README.md
PDND_SRCS :=
