/*
 * Every ceiling send-bridge applies to input, in one place (curl's DYN_*).
 * A value here is a promise to the administrator: nothing read from the
 * network or from the outbox grows past it.
 */
#ifndef SB_LIMITS_H
#define SB_LIMITS_H

/* act.json: real manifests are a few KiB; 1 MiB leaves room for 15 recipients with long texts. */
#define SB_MAX_MANIFEST        (1024u * 1024u)
/* A JSON reply from a platform: SEND's sent-notification with a long timeline stays well under. */
#define SB_MAX_JSON_BODY       (8u * 1024u * 1024u)
/* SEND refuses PDFs above 200 MB (FILE_PDF_TOOBIG_ERROR). */
#define SB_MAX_PDF             (200ull * 1024u * 1024u)
/* F24 metadata JSON: a few KiB in practice. */
#define SB_MAX_F24_JSON        (1024u * 1024u)
/* One segnatura XML. */
#define SB_MAX_XML_SEGNATURA   (1024u * 1024u)
/* One HTTP header line, and the count of headers kept per reply. */
#define SB_MAX_HEADER_LINE     8192u
#define SB_MAX_HEADERS         100u
/* A secret file (API key, token): a key or a PEM fits in 64 KiB. */
#define SB_MAX_SECRET_FILE     (64u * 1024u)
/* The configuration file itself. */
#define SB_MAX_CONFIG_FILE     (1024u * 1024u)
/* A default for sb_buf users that have no better bound. */
#define SB_MAX_DEFAULT         (16u * 1024u * 1024u)
/* Errors collected before giving up: enough to show everything wrong in a manifest. */
#define SB_MAX_PROBLEMS        64u
/* SEND: recipients, documents per notification; items per preload call. */
#define SEND_MAX_RECIPIENTS    15u
#define SEND_MAX_DOCUMENTS     15u
#define SEND_MAX_PAYMENTS      15u
#define SEND_MAX_PRELOAD       15u

#endif
