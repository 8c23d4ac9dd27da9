#!/usr/bin/env python3
"""ndr.py FILE -- parses a delivery status notification with Python's email
package (policy=default) and prints what the tests assert on, one fact a line:

    header NAME: VALUE          top-level headers of the report
    type multipart/report       its content type, then report-type=...
    part N TYPE                 each MIME part in order
    text LINE                   lines of the readable part
    msg NAME: VALUE             per-message delivery-status fields
    rcpt ADDR NAME: VALUE       per-recipient fields (ADDR from Final-Recipient)
    rcpts N                     number of recipient blocks
    returned header NAME: VALUE headers of the returned message or headers part
    returned body LINE          body lines of a returned full message
    defects N                   parser defects found in the whole report

Exits 1 when the file is not a multipart/report at all.
"""
import email
import email.policy
import sys


def returned(part):
    """Yields lines for the third part: the original message or its headers."""
    ctype = part.get_content_type()
    if ctype == 'message/rfc822':
        inner = part.get_payload()[0]
        for name, value in inner.items():
            yield 'returned header %s: %s' % (name, value)
        body = inner.get_payload(decode=True)
        if isinstance(body, bytes):
            for line in body.decode('utf-8', 'replace').splitlines():
                yield 'returned body ' + line
    elif ctype == 'text/rfc822-headers':
        text = part.get_payload(decode=True).decode('ascii', 'replace')
        inner = email.message_from_string(text, policy=email.policy.default)
        for name, value in inner.items():
            yield 'returned header %s: %s' % (name, value)


def status(part):
    blocks = part.get_payload()
    for name, value in blocks[0].items():
        yield 'msg %s: %s' % (name, value)
    yield 'rcpts %d' % (len(blocks) - 1)
    for block in blocks[1:]:
        final = block.get('Final-Recipient', '')
        addr = final.split(';', 1)[-1].strip()
        for name, value in block.items():
            yield 'rcpt %s %s: %s' % (addr, name, value)


def main():
    with open(sys.argv[1], 'rb') as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    for name, value in msg.items():
        yield 'header %s: %s' % (name, value)
    yield 'type ' + msg.get_content_type()
    if msg.get_content_type() != 'multipart/report':
        sys.exit(1)
    yield 'report-type=' + str(msg.get_param('report-type'))
    defects = len(msg.defects)
    for n, part in enumerate(msg.iter_parts(), 1):
        defects += len(part.defects)
        yield 'part %d %s' % (n, part.get_content_type())
        ctype = part.get_content_type()
        if ctype == 'text/plain':
            for line in part.get_content().splitlines():
                yield 'text ' + line
        elif ctype == 'message/delivery-status':
            yield from status(part)
        else:
            yield from returned(part)
    yield 'defects %d' % defects


if __name__ == '__main__':
    for fact in main():
        print(fact)
