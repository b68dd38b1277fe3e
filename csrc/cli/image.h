/*
 * image.h - the brisk program's start-up image (image.c).
 */
#ifndef BRISK_IMAGE_H
#define BRISK_IMAGE_H

#include <stddef.h>
#include <lua.h>

/* A new Lua state whose every allocation is in the image's region, to be
 * saved with brisk_image_save; NULL (errno set) if the region cannot be
 * had. */
lua_State *brisk_image_newstate(void);

/* While an image is being made: note a file its state depends on (a chunk
 * or a source the module searcher looked at, whether it exists or not). */
void brisk_image_note(const char *path);
int brisk_image_building(void);

/* Collect garbage and write the state made by brisk_image_newstate to
 * `path` (through a temporary file and a rename), for the executable
 * running, found at `exe` (readlink of /proc/self/exe). Returns 0, or -1
 * with a message in err. */
int brisk_image_save(lua_State *L, const char *path, const char *exe, char *err, size_t errlen);

/* The state saved in `path`, mapped back, if the image is there, was made
 * by this very executable (found at `exe`, as for brisk_image_save) and
 * nothing it depends on changed (the files noted, Lua's path variables);
 * else NULL and nothing is mapped. */
lua_State *brisk_image_load(const char *path, const char *exe);

/* For a process that runs long (the daemon, the REPL): the mapped image
 * copied into the process's own memory (a file changed in place can no
 * longer reach it) and new blocks from malloc from now on (which returns
 * memory; the region's size classes do not). Harmless twice or without an
 * image. */
void brisk_image_detach(lua_State *L);

#endif
