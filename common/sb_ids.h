/*
 * Validators for Italian identifiers and SEND's formats. Each returns 0 when
 * the value is valid, or SB_EINVAL with err->msg saying what is wrong in
 * terms a clerk understands ("check character wrong (expected K)"). The
 * messages never repeat the value itself, which may be personal data.
 */
#ifndef SB_IDS_H
#define SB_IDS_H

#include <stdbool.h>
#include <stddef.h>

#include "sb_err.h"

/*
 * Codice fiscale of a person: 16 characters, upper case, with omocodia
 * substitutions (LMNPQRSTUV for digits) accepted, month letter, day (1-31,
 * 41-71 for women) and check character verified.
 */
int sb_cf_person_check(const char *cf, struct sb_err *err);

/* Partita IVA or numeric codice fiscale of a body: 11 digits with the Luhn-style check digit. */
int sb_piva_check(const char *piva, struct sb_err *err);

/* Either kind, chosen by length (16 person, 11 numeric). */
int sb_taxid_check(const char *taxid, struct sb_err *err);

/* Two-letter Italian province code (sigla automobilistica), upper case. */
bool sb_province_valid(const char *code);
/* CAP: exactly five digits, not 00000. */
bool sb_cap_valid(const char *cap);
/* pagoPA notice code: exactly 18 digits. */
bool sb_notice_code_valid(const char *s);
/* SEND taxonomy code: ^[0-9]{6}[A-Z]$ */
bool sb_taxonomy_code_valid(const char *s);
/* SEND IUN: ^[A-Z]{4}-[A-Z]{4}-[A-Z]{4}-[0-9]{6}-[A-Z]-[0-9]$ */
bool sb_iun_valid(const char *s);
/* A pragmatic e-mail (PEC) syntax check: local@domain.tld, <= 320, no spaces. */
bool sb_email_valid(const char *s);

#endif
