/*
 * -blockdev on the command line.
 */
#include "block/block-int.h"
#include "util/error.h"
#include "util/cmdline.h"

static bool opt_blockdev(const char *arg, GError **errp)
{
    g_autoptr(Keyval) kv = keyval_parse(arg, "driver", errp);

    return kv && blk_node_create(kv, errp) != NULL;
}

/* -blockdev help, -blockdev driver=file,help */
static bool help_blockdev(const char *arg, FILE *out, GError **errp)
{
    g_autofree char *driver = keyval_help_subject(arg, "driver");

    return blk_print_help(driver, out, errp);
}

static const IovdOption blockdev_options[] = {
    { "blockdev", true, PHASE_BACKEND, opt_blockdev,
      "-blockdev driver=file,node-name=NAME,filename=PATH[,read-only=on]"
      "[,cache.direct=on][,aio=io_uring|native|threads]\n"
      "  -blockdev driver=null,node-name=NAME[,size=SIZE]  add a block node",
      help_blockdev },
    { NULL }
};

void blk_init(void)
{
    iovd_register_options(blockdev_options);
    blk_throttle_group_init();
}
