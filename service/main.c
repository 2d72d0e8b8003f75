/*
 * send-bridge: entry point. Everything happens in cli.c; this file exists
 * so that libsb.a holds every other object and the tests can link it.
 */
#include "sb_common.h"
#include "svc_cli.h"

int main(int argc, char **argv)
{
	return svc_cli_main(argc, argv);
}
