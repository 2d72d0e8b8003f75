/*
 * Functions send-bridge must not call, turned into compile errors (git's
 * banned.h). Included last by sb_common.h so that system headers, which
 * may declare or use them, are already past.
 */
#ifndef SB_BANNED_H
#define SB_BANNED_H

#define SB_BANNED(func) sorry_##func##_is_banned_in_send_bridge

#undef strcpy
#define strcpy(x, y) SB_BANNED(strcpy)
#undef strcat
#define strcat(x, y) SB_BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) SB_BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) SB_BANNED(strncat)
#undef sprintf
#define sprintf(...) SB_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) SB_BANNED(vsprintf)
#undef gets
#define gets(x) SB_BANNED(gets)
#undef strtok
#define strtok(x, y) SB_BANNED(strtok)
#undef atoi
#define atoi(x) SB_BANNED(atoi)
#undef atol
#define atol(x) SB_BANNED(atol)
#undef gmtime
#define gmtime(x) SB_BANNED(gmtime)
#undef localtime
#define localtime(x) SB_BANNED(localtime)
#undef ctime
#define ctime(x) SB_BANNED(ctime)
#undef asctime
#define asctime(x) SB_BANNED(asctime)

#endif
