/**
 * Dead-man switch for ARP-mode VIP addresses. When vipd dies without releasing (SIGKILL, OOM
 * kill, crash), the kernel keeps the VIP on the interface and keeps answering ARP for it, next
 * to the director that takes over. A small shell process, started in its own process group,
 * holds the list of addresses vipd has on L2 interfaces; when its stdin pipe closes (the kernel
 * closes it when vipd dies, however it dies) it deletes them in one `ip -batch`.
 *
 * It cannot help when its own process group or cgroup is killed together with vipd (systemd's
 * default KillMode=control-group on SIGKILL): see the README (ARP-mode VIPs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { hostLength, type HostAddress } from './plan.js';

/*
 * Each line on stdin replaces the whole held set: `ADDR/LEN,DEV ADDR/LEN,DEV ...`. Signals
 * that a terminal or a service manager sends to a group are ignored: only the pipe's end counts.
 */
const SCRIPT = `trap '' INT TERM HUP
held=
while IFS= read -r line; do held=$line; done
for a in $held; do printf 'address del %s dev %s\\n' "\${a%,*}" "\${a##*,}"; done | "$1" -force -batch - >/dev/null 2>&1
exit 0`;

export class Guardian {
  private child?: ChildProcess;
  private exited?: Promise<void>;

  constructor(
    private readonly ipBinary = 'ip',
    private readonly shell = '/bin/sh',
  ) {}

  start(): void {
    if (this.child) return;
    const child = spawn(this.shell, ['-c', SCRIPT, 'vipd-guardian', this.ipBinary], {
      stdio: ['pipe', 'ignore', 'ignore'],
      // Own process group: a signal to vipd's group (Ctrl-C, kill -- -PGID) does not reach it.
      detached: true,
    });
    this.exited = new Promise((resolve) => child.once('close', () => resolve()));
    child.on('error', () => undefined);
    child.stdin?.on('error', () => undefined);
    this.child = child;
  }

  /** Replaces the set of addresses to delete should vipd die. */
  hold(addresses: readonly HostAddress[]): void {
    const line = addresses.map((a) => `${a.address}/${hostLength(a.address)},${a.device}`).join(' ');
    this.child?.stdin?.write(`${line}\n`);
  }

  /**
   * Ends the guardian: it deletes whatever it still holds (nothing, after an orderly release)
   * and exits; killed after `timeoutMs` if it does not.
   */
  async stop(timeoutMs = 3000): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    child.stdin?.end();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.exited,
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }
}
