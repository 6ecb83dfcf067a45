-- A Sakila-like schema with objects beyond tables and views (tests/integration/test_routines.py).
-- Statements are separated by blank lines (bodies hold ';').

CREATE TABLE film (
  film_id INT PRIMARY KEY,
  title VARCHAR(100) NOT NULL,
  rental_rate DECIMAL(4,2) NOT NULL DEFAULT 4.99,
  length SMALLINT
)

CREATE TABLE film_text (
  film_id INT PRIMARY KEY,
  title VARCHAR(100) NOT NULL
)

CREATE TABLE rental (
  rental_id INT AUTO_INCREMENT PRIMARY KEY,
  film_id INT NOT NULL,
  customer VARCHAR(45) NOT NULL,
  rented_at DATETIME NOT NULL
)

CREATE TABLE audit_log (
  id INT AUTO_INCREMENT PRIMARY KEY,
  msg VARCHAR(200) NOT NULL
)

CREATE VIEW film_list AS SELECT film_id, title, rental_rate FROM film

CREATE TRIGGER ins_film AFTER INSERT ON film FOR EACH ROW
  INSERT INTO film_text (film_id, title) VALUES (NEW.film_id, NEW.title)

CREATE TRIGGER upd_film AFTER UPDATE ON film FOR EACH ROW
BEGIN
  IF OLD.title <> NEW.title THEN
    UPDATE film_text SET title = NEW.title WHERE film_id = NEW.film_id;
  END IF;
END

CREATE TRIGGER del_film AFTER DELETE ON film FOR EACH ROW
  DELETE FROM film_text WHERE film_id = OLD.film_id

CREATE PROCEDURE film_in_stock(IN p_film_id INT, OUT p_count INT)
  READS SQL DATA
BEGIN
  SELECT COUNT(*) INTO p_count FROM rental WHERE film_id = p_film_id;
END

CREATE PROCEDURE rewards_report(IN min_rentals INT)
  READS SQL DATA
  COMMENT 'customers with at least min_rentals rentals'
BEGIN
  SELECT customer, COUNT(*) AS rentals FROM rental
  GROUP BY customer HAVING COUNT(*) >= min_rentals ORDER BY customer;
END

CREATE FUNCTION get_rate(p_film_id INT) RETURNS DECIMAL(6,2)
  READS SQL DATA
BEGIN
  DECLARE r DECIMAL(6,2);
  SELECT rental_rate * 2 INTO r FROM film WHERE film_id = p_film_id;
  RETURN r;
END

CREATE FUNCTION title_case(s VARCHAR(100)) RETURNS VARCHAR(100) CHARSET utf8mb4
  DETERMINISTIC
  RETURN CONCAT(UPPER(LEFT(s, 1)), LOWER(SUBSTRING(s, 2)))

CREATE EVENT purge_audit ON SCHEDULE EVERY 1 DAY
  COMMENT 'keep a day of audit'
  DO DELETE FROM audit_log WHERE id < 0

INSERT INTO film (film_id, title, rental_rate, length) VALUES
  (1, 'ACADEMY DINOSAUR', 0.99, 86), (2, 'ACE GOLDFINGER', 4.99, 48),
  (3, 'ADAPTATION HOLES', 2.99, 50), (4, 'AFFAIR PREJUDICE', 2.99, 117)

INSERT INTO rental (film_id, customer, rented_at) VALUES
  (1, 'MARY', '2005-05-24 22:53:30'), (1, 'PATRICIA', '2005-05-24 22:54:33'),
  (2, 'MARY', '2005-05-24 23:03:39'), (3, 'LINDA', '2005-05-24 23:04:41'),
  (1, 'MARY', '2005-05-25 00:00:40')

UPDATE film SET title = 'AFFAIR PREJUDICES' WHERE film_id = 4
