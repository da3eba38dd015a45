/* debugprog.c - a program whose allocating functions are static (only .symtab names them, not
 * .dynsym): tests/tools/debugfiles.sh strips it, moves its symbols and DWARF to a separate debug
 * file, and checks that palloc still names them and gives their lines. */
#include <stdio.h>
#include <stdlib.h>

static void *volatile sink[4096];

__attribute__((noinline)) static void fill_cache(int n) {
  for (int i = 0; i < n; i++) sink[i % 4096] = malloc(1000); /* debugprog.c:12 */
}

__attribute__((noinline)) static void build_table(int n) {
  for (int i = 0; i < n; i++) sink[(i + 2048) % 4096] = calloc(1, 3000);
}

int main(void) {
  fill_cache(1000);
  build_table(300);
  printf("%p\n", sink[0]);
  return 0;
}
