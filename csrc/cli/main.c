/* main.c - placeholder host until the CLI lands. */
#include <stdio.h>
int main(void) { fputs("brisk: not built yet\n", stderr); return 1; }
