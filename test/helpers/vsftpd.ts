/**
 * vsftpd for the e2e tests: a configuration for an anonymous server on `root`, listening on
 * IPv4 and IPv6 port 21 in the foreground, passive ports 30000-30100, no sandbox (it runs in a
 * test namespace), no transfer log, no connection limits.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Writes dir/vsftpd.conf (the base above, then `extra` lines) and returns its path. */
export function writeVsftpdConf(dir: string, root: string, extra: string[]): string {
  const empty = path.join(dir, 'empty');
  fs.mkdirSync(empty, { recursive: true });
  const conf = path.join(dir, 'vsftpd.conf');
  const lines = [
    'listen=NO',
    'listen_ipv6=YES',
    'background=NO',
    'anonymous_enable=YES',
    'no_anon_password=YES',
    `anon_root=${root}`,
    'local_enable=NO',
    'pasv_enable=YES',
    'pasv_min_port=30000',
    'pasv_max_port=30100',
    'seccomp_sandbox=NO',
    `secure_chroot_dir=${empty}`,
    'xferlog_enable=NO',
    'max_per_ip=0',
    'max_clients=0',
    ...extra,
  ];
  fs.writeFileSync(conf, lines.join('\n') + '\n');
  return conf;
}
