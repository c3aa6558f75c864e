/* envexec NAME=VALUE... PROG ARGS...: exec PROG with exactly that environment. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	int i = 1;
	while (i < argc && strchr(argv[i], '=') && argv[i][0] != '/')
		i++;
	if (i >= argc)
		return 127;
	char *env[64];
	int n = 0;
	for (int j = 1; j < i && n < 63; j++)
		env[n++] = argv[j];
	env[n] = NULL;
	execve(argv[i], argv + i, env);
	perror("envexec");
	return 127;
}
