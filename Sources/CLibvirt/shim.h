// The libvirt C API (libvirt-dev), found with pkg-config.
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
