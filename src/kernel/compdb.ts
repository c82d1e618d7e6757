// compile_commands.json for clang tools: Kbuild writes it (its
// gen_compile_commands.py over the build), keel makes it readable by clangd
// and other clang-based editors: the ccache wrapper goes, and so do GCC's own
// flags that clang's driver refuses.

export interface CompileCommand {
  readonly directory: string;
  readonly file: string;
  readonly command: string;
}

/**
 * Flags GCC takes and clang does not (an error on every file in clangd), as
 * x86, arm64 and riscv kernels of 6.x pass them.
 */
const gccOnly = [
  /^-fconserve-stack$/,
  /^-fno-allow-store-data-races$/,
  /^-fno-var-tracking-assignments$/,
  /^-fno-ipa-sra$/,
  /^-fmin-function-alignment=\d+$/,
  /^-fzero-call-used-regs=\S+$/,
  /^-mrecord-mcount$/,
  /^-mno-fp-ret-in-387$/,
  /^-mpreferred-stack-boundary=\d+$/,
  /^-mskip-rax-setup$/,
  /^-mindirect-branch=\S+$/,
  /^-mindirect-branch-register$/,
  /^-mindirect-branch-cs-prefix$/,
  /^-mfunction-return=\S+$/,
  /^-mharden-sls=\S+$/,
  /^-mabi=lp64$/,
  /^-fsanitize-coverage=trace-pc$/,
  /^--param=\S+$/,
  /^-Wno-alloc-size-larger-than$/,
  // Clang before 16 refuses it without an opt-in flag (clangd 14 is Debian 12's).
  /^-ftrivial-auto-var-init=zero$/,
];

/** The command with the ccache wrapper and GCC-only flags taken out (words split at spaces: Kbuild quotes none of these). */
export function clangCommand(command: string): string {
  return command
    .replace(/^\s*ccache\s+/, "")
    .split(" ")
    .filter((word) => !gccOnly.some((flag) => flag.test(word)))
    .join(" ");
}

/**
 * Kbuild's database rewritten for clang tools. Kbuild saw the source through
 * the build directory's link to it (`link`); the database names the source
 * itself, so that an editor finds the files it has open.
 */
export function clangDatabase(entries: readonly CompileCommand[], source: { readonly link: string; readonly src: string }): CompileCommand[] {
  const direct = (entry: CompileCommand, text: string) => text.replaceAll(`${entry.directory}/${source.link}/`, `${source.src}/`);
  return entries.map((entry) => ({ ...entry, file: direct(entry, entry.file), command: direct(entry, clangCommand(entry.command)) }));
}

/** A `.clangd` for a source tree: its compile flags come from the build directory's database. */
export function clangdConfig(buildDirectory: string): string {
  return `# Written by keel: clangd reads this tree's compile flags from the kernel's build directory.\nCompileFlags:\n  CompilationDatabase: ${JSON.stringify(buildDirectory)}\n`;
}
