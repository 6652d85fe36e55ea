# pool: sesh-pool, the local pool server (server, session manager, sandbox, runner).
# runner.py is compiled into the binary, so a pool never runs a runner that
# does not match its own protocol; so are the shared libraries of forked
# sandboxes (zygote_enter.c, loaded by the fork server's Python; sandbox_oom.c,
# loaded by what a forked sandbox executes), each built alone: no sanitizer,
# nothing of the pool in it.
LIB_SRCS  := host/pool/zygote_enter.c host/pool/sandbox_oom.c
POOL_OBJS := $(patsubst host/%.c,$(OBJ)/%.o,$(filter-out $(LIB_SRCS),$(wildcard host/pool/*.c))) \
             $(OBJ)/pool/runner_py.o $(OBJ)/pool/zygote_enter_so.o $(OBJ)/pool/sandbox_oom_so.o

# GnuTLS directly too: tls.c hands libmicrohttpd's handshakes the certificate.
GNUTLS_LIBS = $(call pc,--libs,gnutls)

all: $(BIN)/sesh-pool

$(BIN)/sesh-pool: $(POOL_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(MHD_LIBS) $(GNUTLS_LIBS) $(JANSSON_LIBS) $(SECCOMP_LIBS) -lpthread

# A file's bytes as a C array named $(2) (and $(2)_len).
embed = { echo '/* generated from $(1) */'; \
	  echo 'const unsigned char $(2)[] = {'; \
	  od -An -v -tx1 $(1) | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo '0 };'; \
	  echo 'const unsigned long $(2)_len = sizeof $(2) - 1;'; }

$(OBJ)/pool/runner_py.c: host/pool/runner.py
	@mkdir -p $(dir $@)
	$(call embed,$<,sesh_runner_py) > $@

$(OBJ)/pool/%.so: host/pool/%.c host/pool/zygote_enter.h host/pool/sandbox_system.h
	@mkdir -p $(dir $@)
	$(CC) $(filter-out $(SANITIZE) -MMD -MP,$(CFLAGS)) -fvisibility=hidden -shared \
	    -o $@ $< -ldl

$(OBJ)/pool/%_so.c: $(OBJ)/pool/%.so
	$(call embed,$<,sesh_$*_so) > $@

$(OBJ)/pool/%_so.o: $(OBJ)/pool/%_so.c
	$(CC) $(CFLAGS) -c $< -o $@

$(OBJ)/pool/runner_py.o: $(OBJ)/pool/runner_py.c
	$(CC) $(CFLAGS) -c $< -o $@

# The libraries themselves are kept, so that a build does not make them again.
.SECONDARY: $(patsubst host/%.c,$(OBJ)/%.so,$(LIB_SRCS))
