/*
 * fuzz_cparse.c - libFuzzer target: the text parsers of brisk.core's C side
 * (csrc/nl.c): brisk_parse_prefix (every address and CIDR argument of
 * addr_add, route_add and the bridge steps), brisk_parse_mac and
 * brisk_ifname_invalid.
 *
 * Input: the text (a NUL is appended; bytes after an embedded NUL are
 * ignored, as C sees them). Findings: a crash, a sanitizer report, or a
 * broken round trip: what parses must print back (inet_ntop, the MAC
 * formatter) to text that parses to the same value.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include "../csrc/brisk.h"

static void finding(const char *what, const char *s)
{
	fprintf(stderr, "fuzz_cparse: %s: '%s'\n", what, s);
	abort();
}

static void check_prefix(const char *s)
{
	unsigned char a[16], b[16];
	char text[INET6_ADDRSTRLEN + 8], addr[INET6_ADDRSTRLEN];
	int plen = -2, plen2 = -2, af, af2;

	memset(a, 0xaa, sizeof(a));
	af = brisk_parse_prefix(s, a, &plen);
	if (!af)
		return;
	if (af != AF_INET && af != AF_INET6)
		finding("parse_prefix: unknown family", s);
	if (plen < -1 || plen > (af == AF_INET ? 32 : 128))
		finding("parse_prefix: prefix length out of range", s);
	if (!brisk_ntop(af, a, addr))
		finding("parse_prefix: parsed address does not print", s);
	if (plen >= 0)
		snprintf(text, sizeof(text), "%s/%d", addr, plen);
	else
		snprintf(text, sizeof(text), "%s", addr);
	af2 = brisk_parse_prefix(text, b, &plen2);
	if (af2 != af || plen2 != plen || memcmp(a, b, af == AF_INET ? 4 : 16))
		finding("parse_prefix: round trip changed the value", s);
}

static void check_mac(const char *s)
{
	unsigned char m[6], m2[6];
	char text[18];

	if (brisk_parse_mac(s, m) < 0)
		return;
	brisk_format_mac(m, 6, text);
	if (brisk_parse_mac(text, m2) < 0 || memcmp(m, m2, 6))
		finding("parse_mac: round trip changed the value", s);
	if (strcasecmp(text, s))
		finding("parse_mac: accepted text that is not aa:bb:cc:dd:ee:ff", s);
}

static void check_ifname(const char *s)
{
	const char *why = brisk_ifname_invalid(s);
	size_t n = strlen(s);

	if (!why && (n == 0 || n > 15 || strpbrk(s, "/: \t\n\v\f\r")))
		finding("ifname_invalid: accepted a name the kernel refuses", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check_prefix(s);
	check_mac(s);
	check_ifname(s);
	free(s);
	return 0;
}
