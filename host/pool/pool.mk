# pool: sesh-pool, the local pool server (server, session manager, sandbox, runner).
# runner.py is compiled into the binary, so a pool never runs a runner that
# does not match its own protocol.
POOL_OBJS := $(patsubst host/%.c,$(OBJ)/%.o,$(wildcard host/pool/*.c)) $(OBJ)/pool/runner_py.o

# GnuTLS directly too: tls.c hands libmicrohttpd's handshakes the certificate.
GNUTLS_LIBS = $(call pc,--libs,gnutls)

all: $(BIN)/sesh-pool

$(BIN)/sesh-pool: $(POOL_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(MHD_LIBS) $(GNUTLS_LIBS) $(JANSSON_LIBS) $(SECCOMP_LIBS) -lpthread

$(OBJ)/pool/runner_py.c: host/pool/runner.py
	@mkdir -p $(dir $@)
	{ echo '/* generated from host/pool/runner.py */'; \
	  echo 'const unsigned char sesh_runner_py[] = {'; \
	  od -An -v -tx1 $< | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo '0 };'; \
	  echo 'const unsigned long sesh_runner_py_len = sizeof sesh_runner_py - 1;'; } > $@

$(OBJ)/pool/runner_py.o: $(OBJ)/pool/runner_py.c
	$(CC) $(CFLAGS) -c $< -o $@
