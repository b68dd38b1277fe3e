/* sysctl.c - placeholder until the family lands; registers nothing. */
#include "brisk.h"

void brisk_open_sysctl(lua_State *L, int mod, int meth)
{
	(void)L;
	(void)mod;
	(void)meth;
}
