// The kernels a system can boot. The qemu system picks one in one line
// (`imports` in qemu.ts): kernels.debian or kernels.small.
import { defineModule } from "keel";

export const kernels = {
  /** Debian's prebuilt kernel (linux-image-amd64): nothing to build. */
  debian: defineModule({ boot: { kernel: { source: null } } }),

  /**
   * A small kernel from the project's `linux` input: tinyconfig plus what a
   * QEMU guest running systemd needs, everything built in. About 1500 files:
   * ~6 min cold on two cores, ~1 min with a warm ccache.
   */
  small: defineModule({
    boot: {
      kernel: {
        source: "linux",
        baseConfig: "tinyconfig",
        settings: {
          LOCALVERSION: "-keel-small",
          // What systemd needs of a kernel (its README's list, full-sized pid_max), and sshd's pseudo-terminals.
          SMP: "y", BASE_FULL: "y", PRINTK: "y", BUG: "y", MULTIUSER: "y", FUTEX: "y", EPOLL: "y", SIGNALFD: "y", TIMERFD: "y",
          EVENTFD: "y", SHMEM: "y", AIO: "y", FHANDLE: "y", POSIX_TIMERS: "y", FILE_LOCKING: "y", SYSVIPC: "y",
          CGROUPS: "y", NAMESPACES: "y", UTS_NS: "y", IPC_NS: "y", PID_NS: "y", NET_NS: "y",
          SECCOMP: "y", SECCOMP_FILTER: "y", INOTIFY_USER: "y", UNIX98_PTYS: "y",
          BINFMT_ELF: "y", BINFMT_SCRIPT: "y", PROC_FS: "y", PROC_SYSCTL: "y", SYSFS: "y", TMPFS: "y", TMPFS_POSIX_ACL: "y",
          DEVTMPFS: "y", DEVTMPFS_MOUNT: "y",
          // keel's stage 1: a gzip initrd, modules (all built in here), the overlay keel run lays over the image.
          BLK_DEV_INITRD: "y", RD_GZIP: "y", MODULES: "y", EXT4_FS: "y", OVERLAY_FS: "y",
          // QEMU's machine: PCI virtio disk and network, the serial console, ACPI power button (keel vm stop).
          PCI: "y", VIRTIO_MENU: "y", VIRTIO_PCI: "y", BLOCK: "y", BLK_DEV: "y", VIRTIO_BLK: "y",
          NET: "y", NETDEVICES: "y", NET_CORE: "y", VIRTIO_NET: "y", PACKET: "y", UNIX: "y", INET: "y",
          TTY: "y", SERIAL_8250: "y", SERIAL_8250_CONSOLE: "y",
          ACPI: "y", ACPI_BUTTON: "y", INPUT: "y", INPUT_EVDEV: "y",
          // LZ4, not tinyconfig's XZ: under TCG the kernel decompresses itself 0.6 s sooner.
          KERNEL_LZ4: "y",
        },
      },
    },
  }),
};
