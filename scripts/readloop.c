/*
 * The "libpcap read loop" baseline for scripts/bench.sh: the least any
 * libpcap-based tool must spend on a capture, i.e. opening it and walking
 * every record with pcap_next_ex. caplen is summed and printed so the compiler
 * cannot drop the loop.
 *
 *   cc -O2 -o readloop scripts/readloop.c -lpcap
 *   ./readloop capture.pcap
 */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    struct pcap_pkthdr *hdr;
    const u_char *data;
    uint64_t packets = 0, bytes = 0;
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE.pcap\n", argv[0]);
        return 2;
    }
    pcap_t *p = pcap_open_offline(argv[1], errbuf);
    if (p == NULL) {
        fprintf(stderr, "readloop: %s\n", errbuf);
        return 1;
    }
    while ((rc = pcap_next_ex(p, &hdr, &data)) == 1) {
        packets++;
        bytes += hdr->caplen;
    }
    if (rc == PCAP_ERROR) {
        fprintf(stderr, "readloop: %s\n", pcap_geterr(p));
        pcap_close(p);
        return 1;
    }
    pcap_close(p);
    printf("packets %llu bytes %llu\n", (unsigned long long)packets,
           (unsigned long long)bytes);
    return 0;
}
