/***
 * json.c - a JSON decoder for the store's documents and index (RFC 8259).
 *
 * Objects become tables with string keys (a repeated key: the last one
 * wins), arrays become sequences, `null` is `core.null` (a light userdata
 * NULL, the value lua-cjson uses too, so the two compare equal). A number
 * that is integral and within +-2^53 becomes a Lua integer (it is exact
 * there); any other number a float. Strings are taken as they are written
 * (bytes that are not UTF-8 pass through), their escapes decoded, \u
 * surrogate pairs joined into one UTF-8 sequence.
 *
 * Strict where lua-cjson is lenient: no hexadecimal numbers, no inf/nan,
 * no leading zeros or "+", no control characters inside strings. Nesting is
 * limited to 1000 levels. Bad input returns nil, "json: <what> at
 * character N" (N counted from 1), never raises except on memory errors.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "brisk.h"

#define JSON_MAX_DEPTH 1000
#define EXACT_MAX      9007199254740992.0        /* 2^53 */

struct json {
	lua_State *L;
	const char *p, *end;
	const char *err;                /* what went wrong, at err_at */
	const char *err_at;
	int depth;
};

static int bad(struct json *j, const char *what, const char *at)
{
	if (!j->err) {
		j->err = what;
		j->err_at = at;
	}
	return 0;
}

static void skip_ws(struct json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r'))
		j->p++;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Four hex digits at p (p + 4 <= end checked by the caller), or -1. */
static long hex4(const char *p)
{
	long v = 0;
	int i, h;

	for (i = 0; i < 4; i++) {
		if ((h = hexval((unsigned char)p[i])) < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

static void put_utf8(luaL_Buffer *b, unsigned long c)
{
	char u[4];
	int n;

	if (c < 0x80) {
		u[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		u[0] = (char)(0xc0 | (c >> 6));
		u[1] = (char)(0x80 | (c & 0x3f));
		n = 2;
	} else if (c < 0x10000) {
		u[0] = (char)(0xe0 | (c >> 12));
		u[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		u[2] = (char)(0x80 | (c & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (c >> 18));
		u[1] = (char)(0x80 | ((c >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((c >> 6) & 0x3f));
		u[3] = (char)(0x80 | (c & 0x3f));
		n = 4;
	}
	luaL_addlstring(b, u, (size_t)n);
}

/* A string (j->p at its opening quote): pushes it. */
static int string(struct json *j)
{
	const char *start = ++j->p, *q = start;
	luaL_Buffer b;

	/* the usual case: no escape, pushed straight from the text */
	while (q < j->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
		q++;
	if (q < j->end && *q == '"') {
		lua_pushlstring(j->L, start, (size_t)(q - start));
		j->p = q + 1;
		return 1;
	}
	luaL_buffinit(j->L, &b);
	luaL_addlstring(&b, start, (size_t)(q - start));
	while (q < j->end && *q != '"') {
		unsigned char c = (unsigned char)*q;

		if (c < 0x20)
			return bad(j, "control character in string", q);
		if (c != '\\') {
			luaL_addchar(&b, (char)c);
			q++;
			continue;
		}
		if (q + 1 >= j->end)
			return bad(j, "unfinished string", q);
		switch (q[1]) {
		case '"': luaL_addchar(&b, '"'); break;
		case '\\': luaL_addchar(&b, '\\'); break;
		case '/': luaL_addchar(&b, '/'); break;
		case 'b': luaL_addchar(&b, '\b'); break;
		case 'f': luaL_addchar(&b, '\f'); break;
		case 'n': luaL_addchar(&b, '\n'); break;
		case 'r': luaL_addchar(&b, '\r'); break;
		case 't': luaL_addchar(&b, '\t'); break;
		case 'u': {
			long c1, c2;

			if (j->end - q < 6 || (c1 = hex4(q + 2)) < 0)
				return bad(j, "bad \\u escape", q);
			if (c1 >= 0xd800 && c1 <= 0xdbff) {
				if (j->end - q < 12 || q[6] != '\\' || q[7] != 'u' ||
				    (c2 = hex4(q + 8)) < 0xdc00 || c2 > 0xdfff)
					return bad(j, "unpaired surrogate in \\u escape", q);
				put_utf8(&b, 0x10000 + (((unsigned long)c1 - 0xd800) << 10) +
					 ((unsigned long)c2 - 0xdc00));
				q += 6;
			} else if (c1 >= 0xdc00 && c1 <= 0xdfff) {
				return bad(j, "unpaired surrogate in \\u escape", q);
			} else {
				put_utf8(&b, (unsigned long)c1);
			}
			q += 4;
			break;
		}
		default:
			return bad(j, "bad escape in string", q);
		}
		q += 2;
	}
	if (q >= j->end)
		return bad(j, "unfinished string", start - 1);
	luaL_pushresult(&b);
	j->p = q + 1;
	return 1;
}

/* Past the decimal digits at q. */
static const char *digits(const char *q, const char *end)
{
	while (q < end && *q >= '0' && *q <= '9')
		q++;
	return q;
}

/* A number (RFC 8259 grammar): pushes an integer when integral within
 * +-2^53, else a float. */
static int number(struct json *j)
{
	const char *q = j->p, *start = j->p;
	char tmp[64], *num, *endp;
	size_t n;
	double d;

	if (q < j->end && *q == '-')
		q++;
	if (q < j->end && *q == '0')
		q++;
	else if (q < j->end && *q >= '1' && *q <= '9')
		q = digits(q, j->end);
	else
		return bad(j, "bad number", start);
	if (q < j->end && *q == '.') {
		if (++q >= j->end || *q < '0' || *q > '9')
			return bad(j, "bad number", start);
		q = digits(q, j->end);
	}
	if (q < j->end && (*q == 'e' || *q == 'E')) {
		q++;
		if (q < j->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= j->end || *q < '0' || *q > '9')
			return bad(j, "bad number", start);
		q = digits(q, j->end);
	}
	n = (size_t)(q - start);
	/* strtod needs a terminator: the text may go on with more digits of
	 * something else, so copy (long numbers to the heap) */
	num = n < sizeof(tmp) ? tmp : malloc(n + 1);
	if (!num)
		return luaL_error(j->L, "not enough memory");
	memcpy(num, start, n);
	num[n] = '\0';
	d = strtod(num, &endp);
	if (num != tmp)
		free(num);
	if (d == floor(d) && d >= -EXACT_MAX && d <= EXACT_MAX)
		lua_pushinteger(j->L, (lua_Integer)d);
	else
		lua_pushnumber(j->L, d);
	j->p = q;
	return 1;
}

static int literal(struct json *j, const char *word, size_t n)
{
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return bad(j, "unexpected character", j->p);
	j->p += n;
	return 1;
}

static int value(struct json *j);

/* Values separated by commas up to `close` (']' or '}'; 0: the end of the
 * text, a comma after the last value allowed), into the table on top. */
static int array_items(struct json *j, char close)
{
	lua_Integer i = 0;

	skip_ws(j);
	if (close && j->p < j->end && *j->p == close) {
		j->p++;
		return 1;
	}
	for (;;) {
		skip_ws(j);
		if (!close && j->p >= j->end)
			return 1;
		if (!value(j))
			return 0;
		lua_rawseti(j->L, -2, ++i);
		skip_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (!close && j->p >= j->end)
			return 1;
		if (close && j->p < j->end && *j->p == close) {
			j->p++;
			return 1;
		}
		return bad(j, close ? "expected ',' or ']'" : "expected ','", j->p);
	}
}

static int object_items(struct json *j)
{
	skip_ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 1;
	}
	for (;;) {
		skip_ws(j);
		if (j->p >= j->end || *j->p != '"')
			return bad(j, "expected a string key", j->p);
		if (!string(j))
			return 0;
		skip_ws(j);
		if (j->p >= j->end || *j->p != ':')
			return bad(j, "expected ':'", j->p);
		j->p++;
		skip_ws(j);
		if (!value(j))
			return 0;
		lua_rawset(j->L, -3);
		skip_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return 1;
		}
		return bad(j, "expected ',' or '}'", j->p);
	}
}

/* One value at j->p (whitespace skipped): pushes it. */
static int value(struct json *j)
{
	int ok;

	skip_ws(j);
	if (j->p >= j->end)
		return bad(j, "unexpected end", j->p);
	switch (*j->p) {
	case '{':
	case '[':
		if (++j->depth > JSON_MAX_DEPTH)
			return bad(j, "nested too deeply", j->p);
		luaL_checkstack(j->L, 4, "json: nested too deeply");
		lua_newtable(j->L);
		ok = *j->p++ == '{' ? object_items(j) : array_items(j, ']');
		j->depth--;
		return ok;
	case '"':
		return string(j);
	case 't':
		if (!literal(j, "true", 4))
			return 0;
		lua_pushboolean(j->L, 1);
		return 1;
	case 'f':
		if (!literal(j, "false", 5))
			return 0;
		lua_pushboolean(j->L, 0);
		return 1;
	case 'n':
		if (!literal(j, "null", 4))
			return 0;
		lua_pushlightuserdata(j->L, NULL);
		return 1;
	default:
		if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
			return number(j);
		return bad(j, "unexpected character", j->p);
	}
}

/***
 * Decode JSON text.
 * @function json_decode
 * @tparam string text
 * @tparam[opt] boolean list true: `text` is values separated by commas
 *   (the last may be followed by one too), with no brackets around them;
 *   they are returned as an array
 * @return the value (`core.null` for null)
 * @return[2] nil, "json: <what> at character N"
 */
static int l_json_decode(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	int list = lua_toboolean(L, 2), ok;
	struct json j = { L, s, s + n, NULL, NULL, 0 };

	lua_settop(L, 2);
	if (list) {
		lua_newtable(L);
		ok = array_items(&j, 0);
	} else {
		ok = value(&j);
		if (ok) {
			skip_ws(&j);
			if (j.p < j.end)
				ok = bad(&j, "text after the value", j.p);
		}
	}
	if (!ok) {
		lua_settop(L, 2);
		luaL_pushfail(L);
		lua_pushfstring(L, "json: %s at character %d", j.err ? j.err : "bad text",
				(int)((j.err_at ? j.err_at : j.p) - s) + 1);
		return 2;
	}
	return 1;
}

static const luaL_Reg json_mod[] = {
	{ "json_decode", l_json_decode },
	{ NULL, NULL }
};

void brisk_open_json(lua_State *L, int mod, int meth)
{
	(void)meth;
	lua_pushvalue(L, mod);
	luaL_setfuncs(L, json_mod, 0);
	lua_pushlightuserdata(L, NULL);
	lua_setfield(L, -2, "null");
	lua_pop(L, 1);
}
