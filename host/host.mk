# host: the sesh command line (and later console and embedding API).
HOST_OBJS := $(OBJ)/sesh.o

all: $(BIN)/sesh

$(BIN)/sesh: $(HOST_OBJS) $(BINDING_OBJS) $(TRANSPORT_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CJSON_LIBS) $(LUA_LIBS) $(CURL_LIBS) -lm -ldl
