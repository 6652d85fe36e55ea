# host: the sesh command line, console and embedding API.
HOST_OBJS := $(patsubst host/%.c,$(OBJ)/%.o,$(wildcard host/*.c))

all: $(BIN)/sesh

$(BIN)/sesh: $(HOST_OBJS) $(BINDING_OBJS) $(TRANSPORT_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CJSON_LIBS) $(LUA_LIBS) $(CURL_LIBS) -lreadline -lm -ldl
