/* envexec [--cd=DIR] [--lo-up] NAME=VALUE... PROG ARGS...:
   exec PROG with exactly that environment (xsc-init clears it), optionally
   in DIR and after bringing the loopback interface up. */
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	int i = 1;
	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (!strncmp(argv[i], "--cd=", 5) && chdir(argv[i] + 5) != 0)
			perror("envexec: chdir");
		if (!strcmp(argv[i], "--lo-up")) {
			struct ifreq ifr = { 0 };
			int s = socket(AF_INET, SOCK_DGRAM, 0);
			strcpy(ifr.ifr_name, "lo");
			if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
				perror("envexec: SIOCGIFFLAGS");
			ifr.ifr_flags |= IFF_UP;
			if (s >= 0 && ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
				perror("envexec: SIOCSIFFLAGS");
			close(s);
		}
	}
	int first = i;
	while (i < argc && strchr(argv[i], '=') && argv[i][0] != '/')
		i++;
	if (i >= argc)
		return 127;
	char *env[64];
	int n = 0;
	for (int j = first; j < i && n < 63; j++)
		env[n++] = argv[j];
	env[n] = NULL;
	execve(argv[i], argv + i, env);
	perror("envexec");
	return 127;
}
