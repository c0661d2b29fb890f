/*
 * -blockdev on the command line.
 */
#include "block/block.h"
#include "util/error.h"
#include "util/cmdline.h"

static bool opt_blockdev(const char *arg, GError **errp)
{
    g_autoptr(Keyval) kv = keyval_parse(arg, "driver", errp);

    return kv && blk_node_create(kv, errp) != NULL;
}

static const IovdOption blockdev_options[] = {
    { "blockdev", true, PHASE_BACKEND, opt_blockdev,
      "-blockdev driver=file,node-name=NAME,filename=PATH[,read-only=on]"
      "[,cache.direct=on][,aio=io_uring|native|threads]\n"
      "  -blockdev driver=null,node-name=NAME[,size=SIZE]  add a block node" },
    { NULL }
};

void blk_init(void)
{
    iovd_register_options(blockdev_options);
}
