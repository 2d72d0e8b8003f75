/*
 * Italian identifier validators: see sb_ids.h.
 *
 * Codice fiscale: DM 23/12/1976 and the Agenzia delle Entrate algorithm
 * (odd/even character tables, sum modulo 26). Omocodia: when two people
 * share a code, the Agenzia replaces digits from the right with the letters
 * LMNPQRSTUV; such codes are valid and must be accepted.
 * Partita IVA: DPR 633/1972 art. 35, check digit by the Luhn scheme.
 */
#include <string.h>

#include "sb_common.h"
#include "sb_ids.h"

static const char omocodia_letters[] = "LMNPQRSTUV";
static const char month_letters[] = "ABCDEHLMPRST";

/* Value of a character in odd positions (1st, 3rd, ... counting from 1). */
static int cf_odd_value(char c)
{
	static const int odd[26] = { 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18,
				     20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23 };
	if (c >= '0' && c <= '9')
		return odd[c - '0'];
	return odd[c - 'A'];
}

static int cf_even_value(char c)
{
	return (c >= '0' && c <= '9') ? c - '0' : c - 'A';
}

static bool is_upper(char c)
{
	return c >= 'A' && c <= 'Z';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Digit value at a position where omocodia may have put a letter; -1 if neither. */
static int omocodia_digit(char c)
{
	const char *p;

	if (is_digit(c))
		return c - '0';
	p = c ? strchr(omocodia_letters, c) : NULL;
	return p ? (int)(p - omocodia_letters) : -1;
}

int sb_cf_person_check(const char *cf, struct sb_err *err)
{
	static const int digit_pos[] = { 6, 7, 9, 10, 12, 13, 14 };
	int sum = 0, day, v[7];
	char expected;

	if (strlen(cf) != 16)
		return sb_err_set(err, SB_EINVAL, 0, "must be 16 characters, not %zu", strlen(cf));
	for (int i = 0; i < 16; i++) {
		if (!is_upper(cf[i]) && !is_digit(cf[i]))
			return sb_err_set(err, SB_EINVAL, 0,
					  "character %d is not an upper-case letter or digit",
					  i + 1);
	}
	for (int i = 0; i < 6; i++)
		if (!is_upper(cf[i]))
			return sb_err_set(err, SB_EINVAL, 0,
					  "characters 1-6 must be letters (surname and name)");
	for (size_t i = 0; i < SB_ARRAY_SIZE(digit_pos); i++) {
		v[i] = omocodia_digit(cf[digit_pos[i]]);
		if (v[i] < 0)
			return sb_err_set(err, SB_EINVAL, 0,
					  "character %d must be a digit or an omocodia letter "
					  "(LMNPQRSTUV)", digit_pos[i] + 1);
	}
	if (!strchr(month_letters, cf[8]))
		return sb_err_set(err, SB_EINVAL, 0, "month letter is not one of %s",
				  month_letters);
	if (!is_upper(cf[11]))
		return sb_err_set(err, SB_EINVAL, 0,
				  "character 12 must be a letter (place of birth code)");
	day = v[2] * 10 + v[3];
	if (!((day >= 1 && day <= 31) || (day >= 41 && day <= 71)))
		return sb_err_set(err, SB_EINVAL, 0, "day of birth %d out of range (1-31, 41-71)",
				  day);
	if (!is_upper(cf[15]))
		return sb_err_set(err, SB_EINVAL, 0, "check character must be a letter");
	for (int i = 0; i < 15; i++)
		sum += (i % 2 == 0) ? cf_odd_value(cf[i]) : cf_even_value(cf[i]);
	expected = (char)('A' + sum % 26);
	if (cf[15] != expected)
		return sb_err_set(err, SB_EINVAL, 0,
				  "check character wrong (expected %c)", expected);
	return 0;
}

int sb_piva_check(const char *p, struct sb_err *err)
{
	int sum = 0, check;

	if (strlen(p) != 11)
		return sb_err_set(err, SB_EINVAL, 0, "must be 11 digits, not %zu characters",
				  strlen(p));
	for (int i = 0; i < 11; i++)
		if (!is_digit(p[i]))
			return sb_err_set(err, SB_EINVAL, 0, "must be 11 digits");
	for (int i = 0; i < 10; i++) {
		int d = p[i] - '0';

		if (i % 2 == 1) {
			d *= 2;
			if (d > 9)
				d -= 9;
		}
		sum += d;
	}
	check = (10 - sum % 10) % 10;
	if (p[10] - '0' != check)
		return sb_err_set(err, SB_EINVAL, 0, "check digit wrong (expected %d)", check);
	return 0;
}

int sb_taxid_check(const char *t, struct sb_err *err)
{
	size_t len = strlen(t);

	if (len == 16)
		return sb_cf_person_check(t, err);
	if (len == 11)
		return sb_piva_check(t, err);
	return sb_err_set(err, SB_EINVAL, 0,
			  "must be 16 characters (person) or 11 digits (company), not %zu", len);
}

bool sb_province_valid(const char *code)
{
	/* ISTAT's 107 provinces and metropolitan cities (2017-), by car-plate code. */
	static const char list[] =
		"AG AL AN AO AP AQ AR AT AV BA BG BI BL BN BO BR BS BT BZ CA CB CE CH CL CN "
		"CO CR CS CT CZ EN FC FE FG FI FM FR GE GO GR IM IS KR LC LE LI LO LT LU MB "
		"MC ME MI MN MO MS MT NA NO NU OR PA PC PD PE PG PI PN PO PR PT PU PV PZ RA "
		"RC RE RG RI RM RN RO SA SI SO SP SR SS SU SV TA TE TN TO TP TR TS TV UD VA "
		"VB VC VE VI VR VT VV";

	if (strlen(code) != 2 || !is_upper(code[0]) || !is_upper(code[1]))
		return false;
	for (size_t i = 0; i + 1 < sizeof(list); i += 3)
		if (list[i] == code[0] && list[i + 1] == code[1])
			return true;
	return false;
}

static bool all_digits(const char *s, size_t len)
{
	if (strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_digit(s[i]))
			return false;
	return true;
}

bool sb_cap_valid(const char *cap)
{
	return all_digits(cap, 5) && strcmp(cap, "00000") != 0;
}

bool sb_notice_code_valid(const char *s)
{
	return all_digits(s, 18);
}

bool sb_taxonomy_code_valid(const char *s)
{
	if (strlen(s) != 7 || !is_upper(s[6]))
		return false;
	for (int i = 0; i < 6; i++)
		if (!is_digit(s[i]))
			return false;
	return true;
}

bool sb_iun_valid(const char *s)
{
	/* AAAA-AAAA-AAAA-999999-A-9 */
	static const char shape[] = "AAAA-AAAA-AAAA-999999-A-9";

	if (strlen(s) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		if (shape[i] == 'A' && !is_upper(s[i]))
			return false;
		if (shape[i] == '9' && !is_digit(s[i]))
			return false;
		if (shape[i] == '-' && s[i] != '-')
			return false;
	}
	return true;
}

bool sb_email_valid(const char *s)
{
	const char *at = strchr(s, '@');
	const char *dot;
	size_t len = strlen(s);

	if (!at || at == s || len > 320 || strchr(at + 1, '@'))
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return false;
	dot = strrchr(at + 1, '.');
	return dot && dot > at + 1 && dot[1] != '\0';
}
