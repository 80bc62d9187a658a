import { describe, expect, it } from 'vitest';
import { arpingArgs, classify, detectFlavour } from '../../../src/arp/arping.js';

const IPUTILS_V = 'arping from iputils 20221126\nlibcap: yes, IDN: yes, NLS: no, error.h: yes, getrandom(): yes, __fpending(): yes\n';
const BUSYBOX_V = 'arping: unrecognized option: V\nBusyBox v1.36.1 (2024-06-10 07:11:47 UTC) multi-call binary.\n\nUsage: arping [-fqbDUA] [-c CNT] [-w TIMEOUT] [-I IFACE] [-s SRC_IP] DST_IP\n';
const HABETS_V = 'ARPing 2.23, by Thomas Habets <thomas@habets.se>\n';

const ok = (output: string, code: number | null = 0, signal: NodeJS.Signals | null = null) => ({ code, signal, output, timedOut: false });

describe('detectFlavour', () => {
  it('tells iputils from busybox and refuses other arpings', () => {
    expect(detectFlavour(IPUTILS_V)).toBe('iputils');
    expect(detectFlavour(BUSYBOX_V)).toBe('busybox');
    expect(detectFlavour(HABETS_V)).toBeUndefined();
  });
});

describe('arpingArgs', () => {
  it('sends an unsolicited request from and for the VIP, or a duplicate probe from 0.0.0.0', () => {
    expect(arpingArgs('garp', 'eth0', '198.51.100.1')).toEqual(['-U', '-c', '1', '-I', 'eth0', '-s', '198.51.100.1', '198.51.100.1']);
    expect(arpingArgs('dad', 'eth0', '198.51.100.1', 2)).toEqual(['-D', '-c', '1', '-w', '2', '-I', 'eth0', '198.51.100.1']);
  });
});

describe('classify (outputs recorded from iputils 20221126 and busybox 1.36.1)', () => {
  it('reads a sent probe from either summary', () => {
    expect(classify('garp', ok('ARPING 198.51.100.1 from 198.51.100.1 eth0\nSent 1 probes (1 broadcast(s))\nReceived 0 response(s)\n')).status).toBe('sent');
    expect(classify('garp', ok('ARPING 198.51.100.1 from 198.51.100.1 eth0\nSent 1 probe(s) (0 broadcast(s))\nReceived 0 response(s) (0 request(s), 0 broadcast(s))\n')).status).toBe('sent');
  });

  it('maps failures to link-down, no-device, no-address', () => {
    expect(classify('garp', ok('Interface "eth0" is down\n', 2)).status).toBe('link-down');
    expect(classify('garp', ok('arping: interface eth0 is down\n', 2)).status).toBe('link-down');
    expect(classify('garp', ok('arping: Device nope not available.\n', 2)).status).toBe('no-device');
    expect(classify('garp', ok('arping: interface nope not found: No such device\n', 2)).status).toBe('no-device');
    expect(classify('garp', ok('arping: bind: Cannot assign requested address\n', 2)).status).toBe('no-address');
    expect(classify('garp', ok('arping: bind: Address not available\n', 2)).status).toBe('no-address');
    expect(classify('garp', ok('something else\n', 3)).status).toBe('error');
  });

  it('treats a probe killed by our early SIGINT as interrupted and a hard timeout as timeout', () => {
    expect(classify('garp', ok('', null, 'SIGINT')).status).toBe('interrupted');
    expect(classify('garp', { code: null, signal: 'SIGKILL', output: '', timedOut: true }).status).toBe('timeout');
  });

  it('reports a duplicate with the MAC that answered', () => {
    const dup = classify('dad', ok('ARPING 198.51.100.1 from 0.0.0.0 eth0\nUnicast reply from 198.51.100.1 [F2:29:76:5E:8E:5D]  0.525ms\nSent 1 probes (1 broadcast(s))\nReceived 1 response(s)\n', 1));
    expect(dup).toMatchObject({ status: 'duplicate', mac: 'f2:29:76:5e:8e:5d' });
    expect(classify('dad', ok('ARPING 198.51.100.1 from 0.0.0.0 eth0\nSent 1 probes (1 broadcast(s))\nReceived 0 response(s)\n', 0)).status).toBe('unique');
  });
});
