# common/: HTTP, JSON, logging, configuration, crypto, time, identifiers.
COMMON_SRCS := \
	common/sb_audit.c \
	common/sb_buf.c \
	common/sb_cfg.c \
	common/sb_cfg_keys.c \
	common/sb_crypto.c \
	common/sb_err.c \
	common/sb_http.c \
	common/sb_ids.c \
	common/sb_json.c \
	common/sb_log.c \
	common/sb_mem.c \
	common/sb_parse.c \
	common/sb_problems.c \
	common/sb_sql.c \
	common/sb_time.c
