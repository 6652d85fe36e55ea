# pool: sesh-pool, the local pool server (server, session manager, sandbox, runner).
POOL_OBJS := $(OBJ)/pool/main.o

all: $(BIN)/sesh-pool

$(BIN)/sesh-pool: $(POOL_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(MHD_LIBS) $(JANSSON_LIBS) $(SECCOMP_LIBS)
