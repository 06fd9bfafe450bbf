/*
 * The dashboard's files (common/dashboard/), assembled into the program as
 * they are: the page is served by the process itself and nothing is
 * generated or committed twice. Each file is followed by a NUL so that C
 * can also treat it as a string; the _end symbol marks its last byte + 1
 * (before the NUL). common/overview.c serves them. The paths are relative
 * to the top of the tree, where make runs.
 */
#define ASSET(name, path)                                                                     \
	.global name;                                                                         \
	.type name, @object;                                                                  \
	.balign 16;                                                                           \
	name:                                                                                 \
	.incbin path;                                                                         \
	.global name##_end;                                                                   \
	name##_end:                                                                           \
	.byte 0

	.section .rodata
ASSET(helios_dashboard_html, "common/dashboard/index.html")
ASSET(helios_dashboard_js, "common/dashboard/dashboard.js")
ASSET(helios_dashboard_css, "common/dashboard/dashboard.css")

	.section .note.GNU-stack, "", @progbits
