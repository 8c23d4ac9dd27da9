/*
 * smtpd_listen: bh-smtpd's listener and its session processes, and the
 * inetd-style single session.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "net.h"
#include "priv.h"
#include "smtpd_listen.h"
#include "smtpd_session.h"

enum { LISTEN_MAX = 16 };

/* ---- listening: session processes that serve connections in turn ----
 *
 * The listener accepts, applies the connection limits and hands each
 * connection to a session process: an idle one when there is one (the
 * descriptor goes over the process's control socket), else a new fork.
 * A session process that has finished a connection says so with one byte
 * and waits for the next. Only the listener ends an idle process (it
 * closes the control socket), so a connection is never handed to a
 * process on its way out: after PROC_IDLE_SEC without work, on SIGHUP and
 * at a stop. A process serves at most PROC_USES connections, then exits.
 * A fork and an exit per connection were half of bh-smtpd's cost per
 * message (bench/results.md); Postfix's smtpd processes live the same way. */
enum { PROC_USES = 100, PROC_IDLE_SEC = 30 };

struct child {
	pid_t pid;
	int ctl;		/* our end of its control socket; -1 none */
	int is_idle;		/* waiting for a connection */
	int is_leaving;		/* told to go (or went): serves nothing more */
	time_t idle_since;
	char ip[INET6_ADDRSTRLEN];	/* the peer it serves */
};

static struct child *children;
static size_t nchildren, children_cap;
static int wake_pipe[2] = { -1, -1 };
static volatile sig_atomic_t is_stopping, is_reload;

/* In a session process, between connections: waits for the next one.
 * Its descriptor (the peer's address in ip), or -1: the listener closed
 * the control socket, or a stop was requested. */
static int
proc_next(int ctl, char *ip, size_t cap)
{
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
	char data[INET6_ADDRSTRLEN];
	struct iovec iov = { data, sizeof data - 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	struct pollfd p = { ctl, POLLIN, 0 };
	struct cmsghdr *c;
	sigset_t none;
	ssize_t n;
	int fd = -1;

	sigemptyset(&none);	/* SIGTERM may end the wait */
	while (ppoll(&p, 1, NULL, &none) < 0)
		if (errno != EINTR || smtpd_session_stopping)
			return -1;
	if (smtpd_session_stopping || (n = recvmsg(ctl, &m, MSG_CMSG_CLOEXEC)) <= 0)
		return -1;
	data[n] = '\0';
	for (c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof fd))
			memcpy(&fd, CMSG_DATA(c), sizeof fd);
	snprintf(ip, cap, "%s", data);
	return fd;
}

/* A session process's life: the connection it was forked for, then the
 * ones the listener hands it, with servers.cdb read again for each. */
static _Noreturn void
proc_serve(struct server *srv, int fd, const char *ip, int ctl)
{
	char next[INET6_ADDRSTRLEN];
	int uses;

	for (uses = 1;; uses++) {
		smtpd_session_run(srv, fd, fd, ip);
		/* free before the peer sees the close: a client that connects
		 * again at once finds this process idle */
		if (uses >= PROC_USES || smtpd_session_stopping || ctl < 0 ||
		    write(ctl, "i", 1) != 1) {
			close(fd);
			break;
		}
		close(fd);
		if ((fd = proc_next(ctl, next, sizeof next)) < 0)
			break;
		ip = next;
		conf_mark();	/* every file as it is now */
		smtpd_server_load(srv, srv->name);
	}
	exit(EXIT_DONE);
}

/* Hands connection fd to an idle session process. 0, or -1 (it is gone). */
static int
proc_send(int ctl, int fd, const char *ip)
{
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
	struct iovec iov = { (void *)ip, strlen(ip) + 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	struct cmsghdr *c;

	memset(&u, 0, sizeof u);
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof fd);
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	return sendmsg(ctl, &m, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

/* Ends an idle process (it sees the control socket close and exits), or
 * forgets the control socket of one that is leaving anyway. */
static void
child_leave(struct child *c)
{
	if (c->ctl >= 0)
		close(c->ctl);
	c->ctl = -1;
	c->is_idle = 0;
	c->is_leaving = 1;
	c->ip[0] = '\0';
}

/* Ends the idle processes: all of them, or those idle since before t. */
static void
proc_trim(time_t t, int all)
{
	size_t i;

	for (i = 0; i < nchildren; i++)
		if (children[i].is_idle && (all || children[i].idle_since <= t))
			child_leave(&children[i]);
}

/* The most recently idle process (its pages are the warmest), or NULL. */
static struct child *
proc_idle(void)
{
	struct child *best = NULL;
	size_t i;

	for (i = 0; i < nchildren; i++)
		if (children[i].is_idle && (best == NULL ||
		    children[i].idle_since >= best->idle_since))
			best = &children[i];
	return best;
}

/* A control socket is readable: its process is idle now, or leaving. */
static void
proc_message(struct child *c)
{
	char b;
	ssize_t n = recv(c->ctl, &b, 1, MSG_DONTWAIT);

	if (n == 1) {
		c->is_idle = 1;
		c->idle_since = time(NULL);
		c->ip[0] = '\0';
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR))
		child_leave(c);
}

/* Milliseconds until the oldest idle process is due to end; -1 none. */
static int
proc_timeout(void)
{
	time_t now = time(NULL), due = 0;
	size_t i;

	for (i = 0; i < nchildren; i++)
		if (children[i].is_idle && (due == 0 ||
		    children[i].idle_since + PROC_IDLE_SEC < due))
			due = children[i].idle_since + PROC_IDLE_SEC;
	if (due == 0)
		return -1;
	return due > now ? (int)(due - now) * 1000 : 0;
}

static void
on_signal(int sig)
{
	int err = errno;

	if (sig == SIGTERM || sig == SIGINT)
		is_stopping = 1;
	if (sig == SIGHUP)
		is_reload = 1;
	(void)!write(wake_pipe[1], "x", 1);
	errno = err;
}

static void
children_reap(void)
{
	pid_t pid;
	size_t i;

	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
		for (i = 0; i < nchildren; i++)
			if (children[i].pid == pid) {
				if (children[i].ctl >= 0)
					close(children[i].ctl);
				children[i] = children[--nchildren];
				break;
			}
}

/* Connections being served: in all, or from ip. */
static size_t
children_busy(const char *ip)
{
	size_t i, n = 0;

	for (i = 0; i < nchildren; i++)
		n += !children[i].is_idle && !children[i].is_leaving &&
		    (ip == NULL || strcmp(children[i].ip, ip) == 0);
	return n;
}

/* The bound listen= addresses; SIGHUP brings them in line with the record:
 * kept addresses keep their socket, new ones are bound, gone ones closed.
 * Sessions run in their own processes and are never touched. */
struct listener {
	char addr[160];
	int fd;
};

static struct listener listeners[LISTEN_MAX];
static size_t nlisteners;

static int
listener_take(const char *addr)
{
	size_t i;
	int fd;

	for (i = 0; i < nlisteners; i++)
		if (listeners[i].fd >= 0 && strcmp(listeners[i].addr, addr) == 0) {
			fd = listeners[i].fd;
			listeners[i].fd = -1;
			return fd;
		}
	if ((fd = net_listen(addr)) >= 0)
		log_event("listening", "address=%s", log_quote(addr));
	return fd;
}

/* Binds the record's listen= list. At start a failure is fatal; on a
 * reload the address is left out and logged. */
static void
listen_update(const struct server *srv, int is_start)
{
	struct listener next[LISTEN_MAX];
	const char *p = smtpd_server_get(srv, "listen");
	char addr[sizeof next[0].addr];
	size_t n = 0, i;
	int fd;

	if (*p == '\0')
		die(EXIT_PERM, 0, "server %s has no listen= address", srv->name);
	while (*p != '\0' && n < LISTEN_MAX) {
		size_t len = strcspn(p, ", ");
		snprintf(addr, sizeof addr, "%.*s", (int)len, p);
		p += len;
		while (*p == ',' || *p == ' ')
			p++;
		if (addr[0] == '\0')
			continue;
		if ((fd = listener_take(addr)) >= 0) {
			memcpy(next[n].addr, addr, sizeof addr);
			next[n++].fd = fd;
		} else if (is_start)
			die(EXIT_TEMP, errno, "unable to listen on %s", addr);
		else
			log_event("warning", "msg=\"unable to listen\" address=%s "
			    "error=%s", log_quote(addr), log_quote(strerror(errno)));
	}
	for (i = 0; i < nlisteners; i++)
		if (listeners[i].fd >= 0)
			close(listeners[i].fd);
	memcpy(listeners, next, n * sizeof next[0]);
	nlisteners = n;
}

/* Over the limits: one line, no process. */
static void
refuse_busy(const struct server *srv, int fd, const char *ip, const char *why)
{
	char line[512];
	int n = snprintf(line, sizeof line, "421 4.7.0 %s Error: too many "
	    "connections%s\r\n", smtpd_server_host(srv), why);

	(void)!write(fd, line, n);
	log_event("busy", "peer=%s reason=%s", log_quote(ip),
	    log_quote(*why ? "per-ip" : "total"));
	close(fd);
}

/* Room for one more child in the table. 0, or -1. */
static int
children_room(void)
{
	struct child *c;
	size_t cap = children_cap ? children_cap * 2 : 64;

	if (nchildren < children_cap)
		return 0;
	if ((c = realloc(children, cap * sizeof *c)) == NULL)
		return -1;
	children = c;
	children_cap = cap;
	return 0;
}

/* In the new process: nothing of the listener's stays open. */
static void
child_setup(int ctl_other)
{
	size_t i;

	for (i = 0; i < nlisteners; i++)
		close(listeners[i].fd);
	for (i = 0; i < nchildren; i++)
		if (children[i].ctl >= 0)
			close(children[i].ctl);
	if (ctl_other >= 0)
		close(ctl_other);
	close(wake_pipe[0]);
	close(wake_pipe[1]);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	smtpd_session_signals();
}

static void
child_start(struct server *srv, int fd, const char *ip)
{
	int sv[2] = { -1, -1 };
	pid_t pid;

	/* without a control socket the process serves this one connection */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		sv[0] = sv[1] = -1;
	if (children_room() < 0 || (pid = fork()) < 0) {
		if (sv[0] >= 0) {
			close(sv[0]);
			close(sv[1]);
		}
		refuse_busy(srv, fd, ip, "");
		return;
	}
	if (pid == 0) {
		child_setup(sv[0]);
		proc_serve(srv, fd, ip, sv[1]);
	}
	if (sv[1] >= 0)
		close(sv[1]);
	children[nchildren] = (struct child){ .pid = pid, .ctl = sv[0] };
	snprintf(children[nchildren].ip, sizeof children[0].ip, "%s", ip);
	nchildren++;
	close(fd);
}

/* An idle process takes the connection, else a new one is forked. */
static void
child_assign(struct server *srv, int fd, const char *ip)
{
	struct child *c;

	while ((c = proc_idle()) != NULL) {
		if (proc_send(c->ctl, fd, ip) == 0) {
			c->is_idle = 0;
			snprintf(c->ip, sizeof c->ip, "%s", ip);
			close(fd);
			return;
		}
		child_leave(c);
	}
	child_start(srv, fd, ip);
}

static void
accept_one(struct server *srv, int lfd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char ip[INET6_ADDRSTRLEN];
	int fd;

	if ((fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC)) < 0) {
		/* out of descriptors: the connection stays queued, and without
		 * a pause poll would report it again at once */
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			log_event("warning", "msg=\"accept failed\" error=%s",
			    log_quote(strerror(errno)));
			nanosleep(&(struct timespec){ 0, 100000000 }, NULL);
		}
		return;
	}
	net_peer_text(&ss, ip, sizeof ip);
	children_reap();
	smtpd_server_load(srv, srv->name);	/* limits as configured now */
	if (children_busy(NULL) >= (size_t)srv->max_connections)
		refuse_busy(srv, fd, ip, "");
	else if (children_busy(ip) >= (size_t)srv->max_per_ip)
		refuse_busy(srv, fd, ip, " from your address");
	else
		child_assign(srv, fd, ip);
}

void
smtpd_signals_setup(void)
{
	struct sigaction sa;

	if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		die(EXIT_TEMP, errno, "pipe");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* The poll set: listeners, the wake pipe, then every control socket (its
 * child's index in who[]). The number of entries. */
static size_t
poll_set(struct pollfd **p, size_t **who, size_t *cap)
{
	size_t n, i, need = nlisteners + 1 + nchildren;

	if (need > *cap || *p == NULL || *who == NULL) {
		struct pollfd *np = realloc(*p, (need + 1) * sizeof **p);
		size_t *nw;

		if (np == NULL)
			die(EXIT_TEMP, ENOMEM, "out of memory");
		*p = np;
		if ((nw = realloc(*who, (need + 1) * sizeof **who)) == NULL)
			die(EXIT_TEMP, ENOMEM, "out of memory");
		*who = nw;
		*cap = need;
	}
	for (n = 0; n < nlisteners; n++)
		(*p)[n] = (struct pollfd){ listeners[n].fd, POLLIN, 0 };
	(*p)[n++] = (struct pollfd){ wake_pipe[0], POLLIN, 0 };
	for (i = 0; i < nchildren; i++)
		if (children[i].ctl >= 0) {
			(*who)[n] = i;
			(*p)[n++] = (struct pollfd){ children[i].ctl, POLLIN, 0 };
		}
	return n;
}

/* Lets the sessions in progress finish; idle processes just end. */
static void
serve_stop(const struct server *srv)
{
	size_t i;

	for (i = 0; i < nlisteners; i++)
		close(listeners[i].fd);
	children_reap();
	proc_trim(0, 1);
	log_event("stopping", "server=%s sessions=%zu", log_quote(srv->name),
	    children_busy(NULL));
	for (i = 0; i < nchildren; i++)
		kill(children[i].pid, SIGTERM);	/* end at their next idle point */
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
}

/* Accepts until SIGTERM, then lets the sessions in progress finish. */
void
smtpd_serve(struct server *srv)
{
	static struct pollfd *p;
	static size_t *who, cap;
	size_t n, i;
	char drain[64];

	listen_update(srv, 1);
	priv_drop();	/* the ports are bound: nothing else needs root */
	while (!is_stopping) {
		n = poll_set(&p, &who, &cap);
		if (poll(p, n, proc_timeout()) < 0 && errno != EINTR)
			die(EXIT_TEMP, errno, "poll");
		if (p[nlisteners].revents)
			while (read(wake_pipe[0], drain, sizeof drain) > 0)
				;
		for (i = nlisteners + 1; i < n; i++)
			if (p[i].revents && children[who[i]].ctl == p[i].fd)
				proc_message(&children[who[i]]);
		children_reap();
		proc_trim(time(NULL) - PROC_IDLE_SEC, 0);
		for (i = 0; i < nlisteners && !is_stopping && !is_reload; i++)
			if (p[i].revents & POLLIN)
				accept_one(srv, listeners[i].fd);
		if (is_reload && !is_stopping) {
			is_reload = 0;
			proc_trim(0, 1);	/* new sessions start from the new files */
			if (smtpd_server_load(srv, srv->name) == 1)
				listen_update(srv, 0);
		}
	}
	serve_stop(srv);
}

/* inetd style: the peer from the socket, else $TCPREMOTEIP (ucspi-tcp). */
void
smtpd_serve_inetd(struct server *srv)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char ip[INET6_ADDRSTRLEN] = "";
	const char *env = getenv("TCPREMOTEIP");

	if (getpeername(0, (struct sockaddr *)&ss, &len) == 0)
		net_peer_text(&ss, ip, sizeof ip);
	else if (env != NULL)
		snprintf(ip, sizeof ip, "%s", env);
	priv_drop();
	smtpd_session_signals();
	smtpd_session_run(srv, 0, 1, ip);
}
