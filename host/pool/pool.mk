# pool: sesh-pool, the local pool server (server, session manager, sandbox, runner).
# runner.py is compiled into the binary, so a pool never runs a runner that
# does not match its own protocol; so is the fork server's shared library
# (zygote_enter.c, built alone: no sanitizer, nothing of the pool in it,
# since it is loaded into the fork server's Python).
ENTER_SRC := host/pool/zygote_enter.c
POOL_OBJS := $(patsubst host/%.c,$(OBJ)/%.o,$(filter-out $(ENTER_SRC),$(wildcard host/pool/*.c))) \
             $(OBJ)/pool/runner_py.o $(OBJ)/pool/zygote_enter_so.o

all: $(BIN)/sesh-pool

$(BIN)/sesh-pool: $(POOL_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(MHD_LIBS) $(JANSSON_LIBS) $(SECCOMP_LIBS) -lpthread

# A file's bytes as a C array named $(2) (and $(2)_len).
embed = { echo '/* generated from $(1) */'; \
	  echo 'const unsigned char $(2)[] = {'; \
	  od -An -v -tx1 $(1) | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo '0 };'; \
	  echo 'const unsigned long $(2)_len = sizeof $(2) - 1;'; }

$(OBJ)/pool/runner_py.c: host/pool/runner.py
	@mkdir -p $(dir $@)
	$(call embed,$<,sesh_runner_py) > $@

$(OBJ)/pool/zygote_enter.so: $(ENTER_SRC) host/pool/zygote_enter.h host/pool/sandbox_system.h
	@mkdir -p $(dir $@)
	$(CC) $(filter-out $(SANITIZE) -MMD -MP,$(CFLAGS)) -fvisibility=hidden -shared \
	    -o $@ $< -ldl

$(OBJ)/pool/zygote_enter_so.c: $(OBJ)/pool/zygote_enter.so
	$(call embed,$<,sesh_zygote_enter_so) > $@

$(OBJ)/pool/runner_py.o: $(OBJ)/pool/runner_py.c
	$(CC) $(CFLAGS) -c $< -o $@

$(OBJ)/pool/zygote_enter_so.o: $(OBJ)/pool/zygote_enter_so.c
	$(CC) $(CFLAGS) -c $< -o $@
